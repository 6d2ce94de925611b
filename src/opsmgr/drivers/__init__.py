"""Drivers: where MongoDB is touched. ``base`` is the seam (the types, errors and the ``Driver`` protocol),
``mongod`` drives real processes, ``sim`` the processes of the simulated world.

The dependency with ``opsmgr.sim`` is one way: the sim may import ``drivers.base``'s types, ``drivers.sim``
imports the sim, and nothing the sim imports reaches ``drivers.sim`` or ``drivers.mongod``. May import
``opsmgr.errors`` and, from ``drivers.sim`` only, ``opsmgr.sim``.
"""
