"""Development tools, not needed in production: the MNS emulator, the embedded Redis, the demo,
the process supervisor of ``ims-worker run`` and the payload injector."""
