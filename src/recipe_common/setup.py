import os

from setuptools import find_packages, setup

PACKAGE = "recipe_common"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["tests", "tests.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        (os.path.join("share", PACKAGE), ["package.xml"]),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="recipe maintainers",
    maintainer_email="maintainers@recipe-robotics.org",
    description="The shared core: GR1 robot spec, config toolkit, camera table, task registry, ROS helpers.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
)
