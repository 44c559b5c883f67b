"""Code that runs on builder hosts, shipped to them as text.

Modules here are stdlib-only and Python 3.6 compatible: `backends.buildtools`
reads their source and runs it with `python3 -c`, so nothing has to be
installed on a host. They are never imported by sluice itself at run time.
"""
