"""Builds the ImageJ plugin's jar into the package (src/microsam_fiji/installer/_built/) before the usual build_py,
so every wheel carries a jar compiled from the Java sources it ships with. Without a JDK or ij.jar the build
goes on without the jar (install-fiji then says how to get one). Everything else is in pyproject.toml."""
import importlib.util
import shutil
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).parent
BUILT = ROOT / "src" / "microsam_fiji" / "installer" / "_built"


def _jarbuild():
    # loaded by path: the package's own imports (torch, micro-sam) are not in an isolated build environment
    spec = importlib.util.spec_from_file_location("jarbuild", ROOT / "src/microsam_fiji/installer/jarbuild.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["jarbuild"] = module
    spec.loader.exec_module(module)
    return module


class BuildPyWithPlugin(build_py):
    def run(self):
        jarbuild = _jarbuild()
        try:
            jarbuild.build_jar(BUILT / "micro_sam_fiji.jar", ROOT / "fiji-plugin", self.distribution.get_version())
        except jarbuild.BuildError as err:
            print(f"warning: the ImageJ plugin jar is not built ({err})", file=sys.stderr)
        scripts = BUILT / "fiji-scripts"
        scripts.mkdir(parents=True, exist_ok=True)
        for script in (ROOT / "fiji-scripts").glob("*.ijm"):
            shutil.copyfile(script, scripts / script.name)
        super().run()


setup(cmdclass={"build_py": BuildPyWithPlugin})
