"""The REST API's routes, one router per concern; `app.py` puts them together."""
