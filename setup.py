"""Only what pyproject.toml cannot say: the top-level templates/ folder ships in the wheel as the
package data of `worker.templates` (a package mapped onto that folder), so an installed wheel
finds its templates next to the code (worker/rendering.py). Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["worker", "worker.*"]), "worker.templates"],
    package_dir={"worker.templates": "templates"},
)
