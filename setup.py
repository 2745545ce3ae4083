from pathlib import Path

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


class BuildWithModelCards(build_py):
    """Ship model_cards/*.md inside the package (vbprune/model_cards/) in built wheels;
    a source checkout (editable install) reads them from model_cards/ directly."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "vbprune" / "model_cards"
        target.mkdir(parents=True, exist_ok=True)
        for template in Path("model_cards").glob("*.md"):
            self.copy_file(str(template), str(target / template.name))


version = {}
for line in Path("src/vbprune/_version.py").read_text().splitlines():
    if line.startswith("__version__"):
        exec(line, version)

setup(
    name="vbprune",
    version=version["__version__"],
    description="Variance-Based Pruning (ICCV 2025) of trained timm and Hugging Face vision models",
    long_description=Path("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    package_dir={"": "src"},
    packages=find_packages("src"),
    cmdclass={"build_py": BuildWithModelCards},
    python_requires=">=3.10",
    install_requires=[
        # timm imports torchvision at import time; these two builds match each other and
        # run on CPU-only machines (the local 2.13.0+cpu wheel breaks torchvision).
        "torch>=2.14,<2.15",
        "torchvision>=0.29,<0.30",
        "timm>=1.0.31",  # tested; 1.0.20 cannot rebuild a pruned ViT on the meta device
        "transformers>=5.0",
        "accelerate>=1.10",
        "datasets>=4.0",
        "huggingface_hub>=1.0",
        "evaluate>=0.4.5",
        "safetensors>=0.4",
        "tqdm",
        "scikit-learn",  # its bundled digits train the demo's network
        "matplotlib",  # vbprune sweep's plot
    ],
    extras_require={
        # torch.onnx.export (dynamo) needs onnx and onnxscript; onnxruntime runs the result
        "onnx": ["onnx>=1.17", "onnxscript>=0.3", "onnxruntime>=1.20"],
        "dev": ["pytest>=8", "ruff>=0.6", "onnx>=1.17", "onnxscript>=0.3", "onnxruntime>=1.20"],
    },
    entry_points={"console_scripts": ["vbprune = vbprune.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
