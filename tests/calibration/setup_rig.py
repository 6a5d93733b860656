"""An emulated arm whose motors come as from the factory and are plugged in one at a time (setup-motors tests).

Every servo starts at the factory ID 1 and its model's factory baud (STS3215: 1 Mbaud, XL330/XL430:
57600) and "unplugged" (the emulator's dead flag: it hears nothing and says nothing). ``plug`` chooses
which motors are on the bus, as a user moving the adapter's cable from motor to motor.
"""

from __future__ import annotations

from hardware.emulator import EmulatedServo, Emulator


def factory_emulator(arm: str, faults: str | None = None, seed: int = 0) -> Emulator:
    emu = Emulator(arm, faults=faults, seed=seed)
    for s in emu.servos:
        s.set("ID", s.model.register("ID").default)
        s.set("Baud_Rate", s.model.register("Baud_Rate").default)
        s.dead = True
    return emu


def servo(emu: Emulator, joint: str) -> EmulatedServo:
    return next(s for s in emu.servos if s.spec.joint == joint)


def plug(emu: Emulator, *joints: str) -> None:
    """Only these motors are connected (all of them with ``plug(emu, *all)``)."""
    with emu._lock:  # the server thread reads the flags under this lock
        for s in emu.servos:
            s.dead = s.spec.joint not in joints


def plug_all(emu: Emulator) -> None:
    plug(emu, *(s.spec.joint for s in emu.servos))
