"""Runs one program as __main__ and checks which SDK it ran on:
run_prog.py PROGRAM flamepy|flame (the other one must not be loaded)."""
import runpy
import sys

prog, sdk = sys.argv[1], sys.argv[2]
sys.argv = [prog]
runpy.run_path(prog, run_name="__main__")
other = "flame" if sdk == "flamepy" else "flamepy"
assert sdk in sys.modules, f"{prog} did not import {sdk}"
assert other not in sys.modules, f"{prog} imported {other} too"
print(f"ran on {sdk} from {sys.modules[sdk].__file__}")
