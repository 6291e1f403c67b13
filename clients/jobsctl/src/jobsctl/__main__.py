from jobsctl.main import main

raise SystemExit(main())
