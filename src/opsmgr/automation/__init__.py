"""Automation: each project's goal deployment as an Ops Manager shaped automation config.

``config`` owns the document itself (its empty form, the rules a PUT must satisfy, content equality that
decides when ``version`` moves, where its secrets live) as pure functions over JSON values; ``service``
keeps it in the application database with what agents report. May import ``opsmgr.errors`` and
``opsmgr.store``; never the web framework.
"""
