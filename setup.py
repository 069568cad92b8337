"""Build hook: ship the top-level patroni.yml.j2 inside the patroni_citus package.

The template sits at the top of the repository, where operators look for it; the installed
package must still carry it (template.py loads it as a package resource). Everything else about
the build is declared in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

TEMPLATE = "patroni.yml.j2"
PACKAGE = "patroni_citus"


class BuildPyWithTemplate(build_py):
    """build_py, plus the top-level template copied into the built package.

    An editable install builds nothing: there template.py reads the checkout's file directly.
    """

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            self.copy_file(TEMPLATE, self._built_template())

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs: list[str] = super().get_outputs(include_bytecode)
        return outputs if self.editable_mode else [*outputs, self._built_template()]

    def _built_template(self) -> str:
        return str(Path(self.build_lib, PACKAGE, TEMPLATE))


setup(cmdclass={"build_py": BuildPyWithTemplate})
