"""``--backend kind``: kind clusters with Calico, MetalLB/OpenELB and pinned add-ons, then the kube backend.

Modules, in the order a run uses them: ``configs`` (kind configs, groups, cluster names by
config hash), ``images`` (references, mirrors, the form ``kind load`` needs), ``tools`` (the
``kind``/``docker`` processes and their absence), ``cluster`` (create/reuse/load/logs/delete,
the ``kind`` network, client containers), ``addons`` (the install plan as data), ``install``
(apply and wait), ``backend`` (the :class:`~netiso.backends.base.Backend`), ``plan`` (``--dry-run``).
"""
