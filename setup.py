from setuptools import find_packages, setup

setup(
    name="tower_zoo",
    version="0.1.0",
    description="A TensorFlow/Keras model zoo of two-tower models for retrieval and pre-ranking.",
    packages=find_packages(include=["tower_zoo", "tower_zoo.*"]),
    package_data={"tower_zoo.data.builtin": ["schemas/*.yaml"]},
    python_requires=">=3.11",
    install_requires=[
        "tensorflow~=2.20.0",
        "tf-keras~=2.20",
        "tensorflow-recommenders==0.7.7",
        "scann[tf]~=1.4.2",
        "numpy>=2",
        "absl-py",
        "pyarrow",
        "pandas",
        "pyyaml",
    ],
    extras_require={"test": ["pytest", "hypothesis", "matplotlib", "nbclient", "nbformat", "ipykernel"],
                    "plots": ["matplotlib"]},
    entry_points={"console_scripts": ["tower-zoo=tower_zoo.cli:run"]},
)
