"""The dashboard's static files (plain HTML, CSS and JavaScript, no build step).

This folder is a Python package only so that it installs, and is found at run time, the
same way in a wheel, a normal install and an editable checkout: ``pyproject.toml``
installs it as ``traceforge_daemon.web`` and ``traceforge_daemon/http/ui.py`` serves it.
"""
