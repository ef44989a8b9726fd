import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "recipe_bringup"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["tests", "tests.*", "benchmarks", "benchmarks.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        (os.path.join("share", PACKAGE), ["package.xml"]),
        (os.path.join("share", PACKAGE, "launch"), glob("launch/*.launch.py")),
        (os.path.join("share", PACKAGE, "config"), glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="recipe maintainers",
    maintainer_email="maintainers@recipe-robotics.org",
    description="Launch files, configuration and the embedded single-process bringup.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "embedded = recipe_bringup.embedded:main",
            "twin = recipe_bringup.twin:main",
            "trials = recipe_bringup.trials:main",
        ],
    },
)
