"""A job module that ends the interpreter on import, as a crash in native code would."""
import os
import sys

sys.stderr.write("exits_on_import: bailing out\n")
sys.stderr.flush()
os._exit(3)
