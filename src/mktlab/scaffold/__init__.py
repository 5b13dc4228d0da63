"""`mktlab-new NAME --dir DIR`: write an installable model plug-in package.

The package holds a small working model on bundled data (a linear response model on the
Caravan customers), its config, its notebook and a test that runs mktlab's contract tests
on it. After `pip install -e DIR/NAME`, `mktlab model=NAME`, sweeps, rerun, review and the
contract tests all work, with no file of mktlab changed.
"""

from __future__ import annotations

import argparse
import keyword
import sys
from importlib.resources import files
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from mktlab.models import registry

# template file -> where it goes in the package (relative to DIR/NAME)
LAYOUT = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "init.py.tmpl": "src/{name}/__init__.py",
    "config.py.tmpl": "src/{name}/config.py",
    "module.py.tmpl": "src/{name}/module.py",
    "training.py.tmpl": "src/{name}/training.py",
    "evaluation.py.tmpl": "src/{name}/evaluation.py",
    "model.yaml.tmpl": "src/{name}/conf/model/{name}.yaml",
    "optim.yaml.tmpl": "src/{name}/conf/optim/{name}.yaml",
    "trainer.yaml.tmpl": "src/{name}/conf/trainer/{name}.yaml",
    "test_model.py.tmpl": "tests/test_{name}.py",
}


class ScaffoldError(ValueError):
    pass


def check_name(name: str) -> str:
    """A model name must be a lowercase Python identifier that no installed model or module takes."""
    if not name.isidentifier() or keyword.iskeyword(name) or name != name.lower():
        raise ScaffoldError(f"{name!r} is not a valid model name: use a lowercase Python identifier such as churn_mlp")
    if name in registry.names():
        raise ScaffoldError(f"a model named {name!r} is already installed")
    if name in sys.stdlib_module_names or name in ("mktlab", "jax", "flax", "optax", "mlflow", "hydra", "numpy", "pandas"):
        raise ScaffoldError(f"{name!r} would shadow the Python module of that name: choose another")
    return name


def notebook(name: str) -> nbformat.NotebookNode:
    """The model's notebook: a `parameters` cell, then one call per step."""
    parameters = new_code_cell(
        "# Parameters. The `mktlab` runner injects `config` and `run_id` after this cell;\n"
        "# opened by hand, the notebook composes the default config with `overrides` and opens its own run.\n"
        "overrides = []  # Hydra overrides as on the command line, e.g. model.l2=0.01\n"
        "config = None  # resolved config (injected by the runner)\n"
        "run_id = None  # MLflow run id (injected by the runner)",
        metadata={"tags": ["parameters"]},
    )
    cells = [
        new_markdown_cell(f"# {name}\n\nWhich customers will respond? A linear response model, tracked in MLflow by mktlab."),
        parameters,
        new_code_cell("from IPython.display import Markdown, display\n\nfrom mktlab import session\n\n"
                      f'cfg, tracker = session.start("{name}", config=config, run_id=run_id, overrides=overrides)'),
        new_markdown_cell("## Data"),
        new_code_cell("data = session.load(cfg, tracker)\ndata.class_balance()"),
        new_markdown_cell("## Fit"),
        new_code_cell('result = session.fit(cfg, data, tracker)\nprint(result.summary("val ROC AUC"))'),
        new_markdown_cell("## Evaluate on the test split, against the segment baseline"),
        new_code_cell("report = session.evaluate(cfg, result, data, tracker)\nreport.close_figures()\n"
                      'report.show("learning_curve", "gains")\nreport.metrics_frame()'),
        new_markdown_cell("## Reading"),
        new_code_cell("display(Markdown(session.reading(cfg, report, data)))\nsession.finish(tracker)"),
    ]
    book = new_notebook(cells=cells)
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return book


def write_package(name: str, directory: str | Path) -> Path:
    """Write the package `directory/name`; returns its folder."""
    check_name(name)
    root = Path(directory).expanduser().resolve() / name
    if root.exists() and any(root.iterdir()):
        raise ScaffoldError(f"{root} already exists and is not empty")
    values = {"name": name, "cls": "".join(part.title() for part in name.split("_")), "title": name.replace("_", " ").capitalize()}
    template = files("mktlab.scaffold") / "template"
    for source, target in LAYOUT.items():
        path = root / target.format(**values)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.joinpath(source).read_text(encoding="utf-8").format(**values), encoding="utf-8")
    nbformat.write(notebook(name), root / "src" / name / f"{name}.ipynb")
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mktlab-new", description="Write a new model plug-in package for mktlab.")
    parser.add_argument("name", help="the model's name (a lowercase Python identifier): `mktlab model=NAME`")
    parser.add_argument("--dir", default=".", help="the folder to write the package NAME into (default: here)")
    args = parser.parse_args(argv)
    try:
        root = write_package(args.name, args.dir)
    except ScaffoldError as error:
        print(f"mktlab-new: {error}", file=sys.stderr)
        return 2
    written = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    print(f"wrote {root}:\n  " + "\n  ".join(written))
    print(f"next:\n  pip install -e {root}\n  mktlab model={args.name} debug=tiny\n  cd {root} && pytest")
    return 0


def entry() -> None:
    sys.exit(main())
