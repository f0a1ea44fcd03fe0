"""A job module that never finishes importing (the entry point checker must time it out)."""
import time

while True:
    time.sleep(0.1)
