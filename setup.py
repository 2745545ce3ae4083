"""Only what pyproject.toml cannot say: the metadata, dependencies and entry point live there.

Built wheels carry the model card templates of the top-level ``model_cards/`` as
``vbprune/model_cards/`` (``vbprune.io.model_card.template_path`` looks there); a source
checkout (editable install) reads them from ``model_cards/`` directly.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py


class BuildWithModelCards(build_py):
    """build_py that also copies model_cards/*.md into the built package."""

    def run(self):
        super().run()
        target = Path(self.build_lib) / "vbprune" / "model_cards"
        target.mkdir(parents=True, exist_ok=True)
        for template in sorted(Path("model_cards").glob("*.md")):
            self.copy_file(str(template), str(target / template.name))


setup(cmdclass={"build_py": BuildWithModelCards})
