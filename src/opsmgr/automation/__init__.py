"""Automation: each project's goal deployment as an Ops Manager shaped automation config.

``config`` owns the document itself (its empty form, the check of a whole PUT, content equality that decides
when ``version`` moves, the read accessors), with each section's rules in ``topology``, ``indexes`` and
``security``, the rules every section shares in ``rules``, and where its secrets live in ``secrets``: pure
functions over JSON values. ``records`` reads its processes and replica sets as typed values. ``service``
keeps the config in the application database with what agents report. May import ``opsmgr.errors`` and
``opsmgr.store``; never the web framework.
"""
