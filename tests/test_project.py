"""Checks of the project itself: the pins, the README and the skopt paths the kit relies on."""

import re
import tomllib
import warnings
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_mirrors_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = env["dependencies"]
    python = [d for d in conda if isinstance(d, str) and d.startswith("python")]
    assert python == ["python=3.11"]
    assert _pyproject()["project"]["requires-python"] == ">=3.11"
    pip = next(d["pip"] for d in conda if isinstance(d, dict))
    project = _pyproject()["project"]
    pins = [
        *project["dependencies"],
        *project["optional-dependencies"]["course"],
        *project["optional-dependencies"]["dev"],
    ]
    # environment.yml lists the same requirements, then installs the package itself.
    assert pip[:-1] == pins
    assert pip[-1] == "-e .[course,dev]"


def test_torch_is_pinned_to_the_local_build():
    deps = _pyproject()["project"]["dependencies"]
    assert "torch==2.14.1" in deps and "torchvision==0.29.1" in deps


def test_every_notebook_is_in_the_readme_syllabus():
    readme = (ROOT / "README.md").read_text()
    notebooks = sorted(p.name for p in (ROOT / "course").glob("*.ipynb"))
    assert notebooks, "course/ has no notebooks"
    missing = [n for n in notebooks if n not in readme]
    assert not missing, f"notebooks missing from the README syllabus: {missing}"


def test_readme_names_one_install_and_one_test_command():
    readme = (ROOT / "README.md").read_text()
    install = re.findall(r"^pip install .*$", readme, flags=re.M)
    assert install == ['pip install -e ".[course,dev]"']
    assert re.search(r"^pytest$", readme, flags=re.M)


# scikit-optimize 0.10.2 and scikit-learn: the HPO lessons use these three paths; GBRT is
# broken with every scikit-learn that skopt 0.10.2 supports here, so the kit avoids it.
@pytest.mark.parametrize("name", ["gp_minimize", "forest_minimize", "dummy_minimize"])
def test_skopt_paths_the_kit_uses(name):
    import skopt

    minimize = getattr(skopt, name)
    kwargs = {} if name == "dummy_minimize" else {"n_initial_points": 5}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = minimize(
            lambda x: (x[0] - 0.3) ** 2, [(-1.0, 1.0)], n_calls=15, random_state=0, **kwargs
        )
    assert len(result.func_vals) == 15
    assert result.fun < 0.01


def test_gbrt_minimize_is_broken_so_the_kit_avoids_it():
    import skopt

    with warnings.catch_warnings(), pytest.raises(ValueError):
        warnings.simplefilter("ignore")
        skopt.gbrt_minimize(
            lambda x: x[0] ** 2, [(-1.0, 1.0)], n_calls=8, random_state=0, n_initial_points=3
        )
