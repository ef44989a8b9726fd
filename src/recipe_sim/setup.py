import os

from setuptools import find_packages, setup

PACKAGE = "recipe_sim"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["tests", "tests.*", "benchmarks", "benchmarks.*"]),
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        (os.path.join("share", PACKAGE), ["package.xml"]),
    ],
    package_data={"recipe_sim": ["data/init_states/*.npz", "data/specialists/*/*"]},
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="recipe maintainers",
    maintainer_email="maintainers@recipe-robotics.org",
    description="MuJoCo GR1 twin, tasks, contact-sticker rewards, domain randomization, PPO, distillation.",
    license="Apache-2.0",
    extras_require={"test": ["pytest"]},
    entry_points={
        "console_scripts": [
            "train = recipe_sim.train:main",
            "eval = recipe_sim.evaluate:main",
            "scripted_init_states = recipe_sim.scripted_play:main",
            "record_init_states = recipe_sim.init_states_recorder:main",
            "task_video = recipe_sim.task_video:main",
            "collect = recipe_sim.distill.collect:main",
            "eval_generalist = recipe_sim.distill.eval_generalist:main",
        ],
    },
)
