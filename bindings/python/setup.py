"""Build the `flame` package: a C extension over libflame's client core.

libflame is found in FLAME_BUILD_DIR (default: ../../build, the repository's
meson build) and its headers in FLAME_SOURCE_DIR/include (default: ../..).
libflame is copied into the package beside the extension, whose RUNPATH is
$ORIGIN: the installed package needs neither LD_LIBRARY_PATH nor the build
tree, and works wherever it is moved.
"""
import glob
import os
import re
import shutil

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.environ.get("FLAME_SOURCE_DIR", os.path.join(here, "..", "..")))
build = os.path.abspath(os.environ.get("FLAME_BUILD_DIR", os.path.join(root, "build")))
libdir = os.path.join(build, "libflame")
incdir = os.path.join(root, "include")
if not os.path.exists(os.path.join(libdir, "libflame.so")):
    raise SystemExit(f"libflame.so not found in {libdir}: build the project first "
                     "(meson setup build && ninja -C build) or set FLAME_BUILD_DIR")



class BundleLibflame(build_ext):
    """Builds the extension, then puts libflame (under its soname, the name
    the extension asks the loader for) beside it."""

    def run(self):
        super().run()
        sonames = [p for p in glob.glob(os.path.join(libdir, "libflame.so.*"))
                   if re.fullmatch(r"libflame\.so\.\d+", os.path.basename(p))]
        if not sonames:
            raise SystemExit(f"no libflame.so.N in {libdir}")
        dest = os.path.dirname(self.get_ext_fullpath("flame._flame"))
        for so in sonames:
            shutil.copyfile(os.path.realpath(so), os.path.join(dest, os.path.basename(so)))


setup(
    name="flame",
    cmdclass={"build_ext": BundleLibflame},
    version="0.1.0",
    description="Flame in C: Python client and service API over libflame",
    license="Apache-2.0",
    packages=["flame"],
    package_data={"flame": ["py.typed"]},
    ext_modules=[Extension(
        "flame._flame",
        sources=["flame/_flame.c"],
        include_dirs=[incdir],
        library_dirs=[libdir],
        libraries=["flame"],
        runtime_library_dirs=["$ORIGIN"],
        extra_compile_args=["-Wall", "-Werror=implicit-function-declaration"],
    )],
    python_requires=">=3.8",
)
