"""Package set-up, read from settings.ini (the single project configuration)."""
from configparser import ConfigParser
from pathlib import Path

import setuptools

here = Path(__file__).parent
cfg = ConfigParser(delimiters=["="])
cfg.read(here / "settings.ini", encoding="utf-8")
c = cfg["DEFAULT"]

requirements = [
    line.strip()
    for line in (here / "requirements.txt").read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith("#")
]

setuptools.setup(
    name=c["lib_name"],
    version=c["version"],
    description=c["description"],
    author=c["author"],
    license="Apache-2.0",
    python_requires=">=" + c["min_python"],
    packages=setuptools.find_packages(include=["strategy_engine", "strategy_engine.*"]),
    install_requires=requirements,
    entry_points={
        "console_scripts": [c["console_scripts"]],
        "nbdev": [f"{c['lib_path']}={c['lib_path']}._modidx:d"],
    },
    include_package_data=True,
    zip_safe=False,
)
