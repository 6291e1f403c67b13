"""The dashboard's ES modules link up without a build step: index.html loads main.js as
a module, each import names a module in web/ and names it exports, and each module is
reached from main.js. A broken link would stop the whole page at load."""

import re
from pathlib import Path

WEB = Path(__file__).resolve().parents[2] / "web"
ENTRY = "main.js"
# The one import form the modules use: `import { a, b } from "./module.js";`
IMPORT = re.compile(r'^import\s*\{([^}]*)\}\s*from\s*"\./([\w-]+\.js)";', re.MULTILINE)
ANY_IMPORT = re.compile(r"^import\b", re.MULTILINE)
EXPORT = re.compile(r"^export\s+(?:async\s+)?(?:function|const|let|class)\s+([\w$]+)", re.MULTILINE)


def imports_of(source: str) -> dict[str, set[str]]:
    """Module file name -> the names imported from it."""
    found: dict[str, set[str]] = {}
    for names, module in IMPORT.findall(source):
        found.setdefault(module, set()).update(n.strip() for n in names.split(",") if n.strip())
    return found


def test_index_loads_the_entry_module() -> None:
    html = (WEB / "index.html").read_text()
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert len(scripts) == 1, scripts
    assert 'type="module"' in scripts[0] and f'src="{ENTRY}"' in scripts[0], scripts


def test_every_import_is_exported_by_a_module_in_web() -> None:
    modules = {path.name: path.read_text() for path in WEB.glob("*.js")}
    for name, source in modules.items():
        assert len(IMPORT.findall(source)) == len(ANY_IMPORT.findall(source)), (
            f'{name}: an import not of the form `import {{ ... }} from "./x.js";`'
        )
        for module, names in imports_of(source).items():
            assert module in modules, f"{name} imports {module}, which is not in web/"
            missing = names - set(EXPORT.findall(modules[module]))
            assert not missing, f"{name} imports {sorted(missing)} that {module} does not export"


def test_every_module_is_reached_from_the_entry() -> None:
    modules = {path.name: path.read_text() for path in WEB.glob("*.js")}
    reached: set[str] = set()
    todo = [ENTRY]
    while todo:
        name = todo.pop()
        if name in reached or name not in modules:
            continue
        reached.add(name)
        todo.extend(imports_of(modules[name]))
    assert reached == set(modules), f"not loaded by the page: {sorted(set(modules) - reached)}"
