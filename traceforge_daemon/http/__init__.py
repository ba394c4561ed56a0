"""The daemon's aiohttp application (``app.py``): the read API by resource
(``api_runs``, ``api_steps``, ``api_stats``), maintenance (``api_admin``: prune), live
events (``api_events``), the listener with its connection cap (``serving``), the OpenAPI
description and docs page (``openapi``, ``docs_page``), the dashboard's files (``ui``),
and what every request shares: the error shape (``errors``), the access guard
(``guard``: Host, Origin and token rules) with its login form (``login``), query
parameters (``params``) and the one read path (``reads``).

May import ``storage`` (reads go through the Store), ``settings`` and ``limits``; never
``ingest``.
"""
