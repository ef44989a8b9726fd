import os

from setuptools import find_packages, setup

PACKAGE = "recipe_gr1_driver"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["tests", "tests.*", "benchmarks", "benchmarks.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        (os.path.join("share", PACKAGE), ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="recipe maintainers",
    maintainer_email="maintainers@recipe-robotics.org",
    description="Safe GR1 joint-command driver with a MuJoCo sim backend and a hardware backend.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "driver = recipe_gr1_driver.node:main",
        ],
    },
)
