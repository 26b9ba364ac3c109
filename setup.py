"""Build hook: ship the top-level ``models/`` configs inside the package.

Everything else about the build is in ``pyproject.toml``. The detector configs
stay at the repository's top level (``models/``, where they are edited and
where mmengine users expect them); a wheel or a non-editable install carries a
copy made here, at build time, as ``ceal_pipeline/detector/configs/``, which
:func:`ceal_pipeline.detector.builder.models_dir` finds through the package's
resources. An editable install needs no copy: it resolves ``models/`` in the
checkout.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

#: The config folder in the repository, and where the package carries it.
CONFIG_SOURCE = Path(__file__).resolve().parent / "models"
CONFIG_PACKAGE_DIR = ("ceal_pipeline", "detector", "configs")


class build_py_with_detector_configs(build_py):  # noqa: N801 (setuptools command naming)
    """``build_py`` that also copies ``models/*.py`` into the built package."""

    def _config_targets(self) -> list[tuple[Path, Path]]:
        if getattr(self, "editable_mode", False):
            return []
        target_dir = Path(self.build_lib, *CONFIG_PACKAGE_DIR)
        return [(source, target_dir / source.name) for source in sorted(CONFIG_SOURCE.glob("*.py"))]

    def run(self) -> None:
        super().run()
        targets = self._config_targets()
        if not targets and not getattr(self, "editable_mode", False):
            raise FileNotFoundError(f"no detector configs in {CONFIG_SOURCE}: the package would ship without them")
        for source, target in targets:
            self.mkpath(str(target.parent))
            self.copy_file(str(source), str(target), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), *(str(target) for _, target in self._config_targets())]


setup(cmdclass={"build_py": build_py_with_detector_configs})
