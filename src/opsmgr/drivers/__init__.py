"""Drivers: where MongoDB is touched. ``base`` is the seam (the types, errors and the ``Driver`` protocol),
``mongod`` drives real processes, ``sim`` the processes of the simulated world.

The dependency with ``opsmgr.sim`` is one way at run time: the sim uses ``drivers.base``'s types, and
``drivers.sim`` drives a world its caller hands it, naming the sim's ``SimWorld`` as a type only; nothing the
sim imports reaches ``drivers.sim`` or ``drivers.mongod``. May import ``opsmgr.errors`` and ``opsmgr.sim``
(from ``drivers.sim``, under TYPE_CHECKING only).
"""
