"""Build the `flame` package: a C extension over libflame's client core.

libflame is found in FLAME_BUILD_DIR (default: ../../build, the repository's
meson build) and its headers in FLAME_SOURCE_DIR/include (default: ../..);
the extension records libflame's directory as its rpath, so `import flame`
needs no LD_LIBRARY_PATH.
"""
import os

from setuptools import Extension, setup

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.environ.get("FLAME_SOURCE_DIR", os.path.join(here, "..", "..")))
build = os.path.abspath(os.environ.get("FLAME_BUILD_DIR", os.path.join(root, "build")))
libdir = os.path.join(build, "libflame")
incdir = os.path.join(root, "include")
if not os.path.exists(os.path.join(libdir, "libflame.so")):
    raise SystemExit(f"libflame.so not found in {libdir}: build the project first "
                     "(meson setup build && ninja -C build) or set FLAME_BUILD_DIR")

setup(
    name="flame",
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
        runtime_library_dirs=[libdir],
        extra_compile_args=["-Wall", "-Werror=implicit-function-declaration"],
    )],
    python_requires=">=3.8",
)
