import os

from setuptools import find_packages, setup

PACKAGE = "recipe_policy"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["tests", "tests.*", "benchmarks", "benchmarks.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        (os.path.join("share", PACKAGE), ["package.xml"]),
    ],
    install_requires=["setuptools"],
    package_data={"recipe_policy": ["data/generalists/*/*"]},
    zip_safe=True,
    maintainer="recipe maintainers",
    maintainer_email="maintainers@recipe-robotics.org",
    description="5 Hz diffusion-policy node (depth + proprioception + object position).",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "policy_node = recipe_policy.node:main",
            "train_generalist = recipe_policy.train:main",
            "dataset_summary = recipe_policy.dataset_summary:main",
        ],
    },
)
