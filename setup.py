"""ament_python build of pano_perception (also a plain pip/editable install)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "pano_perception"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["data/*", "data/**/*"]},
    include_package_data=True,
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
    ],
    install_requires=["setuptools"],
    zip_safe=False,
    maintainer="pano_perception maintainers",
    maintainer_email="maintainers@pano-perception.dev",
    description="Full-sphere perception for a robot with one 360-degree camera.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "pano-perception = pano_perception.cli.main:main",
            "dense_node = pano_perception.ros.dense_node:main",
            "sap_node = pano_perception.ros.sap_node:main",
        ],
    },
)
