"""Interactive wizards as state machines, separate from their terminal UIs.

``calibrate.CalibrateWizard`` (``harmowam calibrate``, UI in ``ui_calibrate``; homing and range
arithmetic in ``frames``), ``setup_motors`` and ``find_port`` (``harmowam setup-motors`` and
``find-port``, UI in ``ui_setup``). Each wizard is driven by events (confirm, sample, cancel...) and
does its device actions through the async bus; the UIs only feed events and render state, with the
generic terminal toolkit in ``calibration.tui``.
"""
