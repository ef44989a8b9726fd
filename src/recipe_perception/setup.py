import os

from setuptools import find_packages, setup

PACKAGE = "recipe_perception"

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
    description="Camera ingest, object segmentation and tracking, centroid lifting, calibration.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "perception = recipe_perception.node:main",
            "realsense = recipe_perception.realsense.node:main",
            "calibrate_extrinsics = recipe_perception.calibration.cli:main",
        ],
    },
)
