"""Replies at real wire time: measured by a raw pyserial client against an emulator in its own process.

Every reply is handed to the pty only once it would have left a real wire, so no single round trip
may be shorter than the wire time; the median may exceed it only by pty and scheduling overhead
(tens of microseconds; the bound here is generous for a loaded 2-core machine).
"""

from __future__ import annotations

import statistics
import time

import pytest
import serial

from hardware.emulator import Emulator, EmulatorProcess
from hardware.protocol import feetech as ft

SLACK_S = 0.003  # median overhead allowed on top of the wire time
EARLY_S = 20e-6  # clock granularity margin for "never earlier than the wire"


def round_trips(ser: serial.Serial, request: bytes, reply_len: int, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        ser.write(request)
        got = ser.read(reply_len)
        out.append(time.perf_counter() - t0)
        assert len(got) == reply_len
    return out


def wire_s(n_bytes: int, baud: int) -> float:
    return n_bytes * 10 / baud


@pytest.fixture(scope="module", params=[1_000_000, 57_600])
def proc_port(request):
    with EmulatorProcess("so101", baud=request.param) as proc:
        ser = serial.Serial(proc.port, request.param, timeout=0.5)
        for sid in range(1, 7):  # Return_Delay_Time 0, as LeRobot configures it
            ser.write(ft.write(sid, 7, b"\x00"))
            assert len(ser.read(6)) == 6
        yield ser, request.param
        ser.close()


def test_read_round_trip_matches_wire_time(proc_port):
    ser, baud = proc_port
    request = ft.read(1, 56, 2)
    rtts = round_trips(ser, request, 8, 150 if baud > 100_000 else 40)
    wire = wire_s(len(request) + 8, baud)
    assert min(rtts) >= wire - EARLY_S, (min(rtts), wire)
    assert statistics.median(rtts) <= wire + SLACK_S, (statistics.median(rtts), wire)


def test_sync_read_of_six_round_trip(proc_port):
    ser, baud = proc_port
    request = ft.sync_read(56, 2, range(1, 7))
    rtts = round_trips(ser, request, 6 * 8, 100 if baud > 100_000 else 20)
    wire = wire_s(len(request) + 48, baud)
    assert min(rtts) >= wire - EARLY_S
    assert statistics.median(rtts) <= wire + SLACK_S


def test_return_delay_time_is_honoured():
    with EmulatorProcess("so101") as proc:
        ser = serial.Serial(proc.port, 1_000_000, timeout=0.5)
        ser.write(ft.write(1, 7, bytes([250])))  # 500 us (also the factory default)
        assert len(ser.read(6)) == 6
        request = ft.read(1, 56, 2)
        rtts = round_trips(ser, request, 8, 60)
        wire = wire_s(len(request) + 8, 1_000_000) + 500e-6
        assert min(rtts) >= wire - EARLY_S
        assert statistics.median(rtts) <= wire + SLACK_S
        ser.close()


def test_back_to_back_requests_queue_on_the_wire(make_client):
    with Emulator("so101") as emu:
        for s in emu.servos:
            s.set("Return_Delay_Time", 0)
        client = make_client(emu.port)
        one, two = ft.read(1, 56, 2), ft.read(2, 56, 2)
        t0 = time.perf_counter()
        client.send(one + two)  # the second request waits for the first exchange to finish
        assert len(client.raw(16, timeout=0.5)) == 16
        assert time.perf_counter() - t0 >= wire_s(2 * (8 + 8), 1_000_000) - EARLY_S


def test_wrong_client_baud_gets_no_reply(make_client):
    with Emulator("so101") as emu:
        client = make_client(emu.port, baud=115_200)
        assert client.silent(ft.ping(1), wait=0.05)
        assert client.silent(ft.read(1, 56, 2), wait=0.05)
        assert emu.stats.wrong_baud >= 2 and emu.stats.replies == 0
        client.set_baud(1_000_000)
        assert client.one(ft.ping(1)).id == 1


def test_custom_baud_rates_are_recognised(make_client):
    with Emulator("so101", baud=250_000) as emu:  # pyserial sets this rate with BOTHER
        client = make_client(emu.port, baud=250_000)
        assert client.one(ft.ping(3)).id == 3
        client.set_baud(500_000)
        assert client.silent(ft.ping(3), wait=0.05)


def test_poll_fallback_for_high_file_descriptors(monkeypatch, make_client):
    import hardware.emulator.server as server

    monkeypatch.setattr(server, "SELECT_MAX_FD", 0)  # as if the pty's fd were past FD_SETSIZE
    with Emulator("so101") as emu:
        emu.servo(1).set("Return_Delay_Time", 0)
        client = make_client(emu.port)
        request = ft.read(1, 56, 2)
        for _ in range(20):
            t0 = time.perf_counter()
            assert client.one(request).id == 1
            assert time.perf_counter() - t0 >= wire_s(len(request) + 8, 1_000_000) - EARLY_S


def test_timing_reports_handling_and_send_lag_of_what_it_served():
    with Emulator("so101") as emu:
        assert emu.timing()["handle_n"] == 0 and emu.timing()["handle_ms_p50"] is None
        ser = serial.Serial(emu.port, 1_000_000, timeout=0.5)
        try:
            for _ in range(20):
                ser.write(ft.read(1, 56, 2))
                assert len(ser.read(8)) == 8
        finally:
            ser.close()
        t = emu.timing()
    assert t["send_lag_n"] == emu.stats.replies == 20
    assert t["handle_n"] >= 20  # one per chunk of bytes read (a request may come in pieces)
    assert 0 <= t["handle_ms_p50"] <= t["handle_ms_p99"] <= t["handle_ms_max"] < 100
    assert t["send_lag_ms_p50"] <= t["send_lag_ms_max"] and t["send_lag_ms_p50"] >= 0
