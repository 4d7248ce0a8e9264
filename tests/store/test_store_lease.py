"""Leases: one holder of a role per database, released on release or on the holder's death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tcp_lab.bots import BotManager
from tcp_lab.errors import ServiceError
from tcp_lab.store import open_store


def test_a_second_holder_is_refused_with_the_first_named(store_url):
    with open_store(store_url) as a, open_store(store_url) as b:
        lease = a.lease("bots manager")
        with pytest.raises(ServiceError, match=rf"bots manager lease .*held by tcp_lab bots "
                                               rf"manager pid={os.getpid()}"):
            b.lease("bots manager")
        other = b.lease("collector")          # another role is independent
        lease.release()
        lease.release()                       # idempotent
        with b.lease("bots manager") as again:  # free once released
            assert again.held
        assert not again.held
        other.release()


def test_leases_are_per_database(tmp_path):
    with open_store(f"duckdb:///{tmp_path / 'a.duckdb'}") as a, \
            open_store(f"duckdb:///{tmp_path / 'b.duckdb'}") as b:
        with a.lease("bots manager"), b.lease("bots manager"):
            pass


def test_a_second_bot_manager_on_the_same_database_fails_at_start(store_url, memory_bus_url):
    with open_store(store_url) as store, BotManager(store, memory_bus_url) as first:
        second = BotManager(store, memory_bus_url)
        with pytest.raises(ServiceError, match="bots manager lease"):
            second.start()
        second.stop()
        assert first.running == []
    with BotManager(store_url, memory_bus_url):  # the first one's stop released it
        pass


@pytest.mark.services
def test_the_server_frees_a_lease_when_its_holder_is_killed(postgres_url):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from tcp_lab.store import open_store
        store = open_store({postgres_url!r})
        lease = store.lease("bots manager")
        print("held", flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with open_store(postgres_url) as store:
            with pytest.raises(ServiceError, match=f"pid={holder.pid} host="):
                store.lease("bots manager")
            holder.send_signal(signal.SIGKILL)
            holder.wait(10)
            deadline = time.monotonic() + 10
            while True:  # the server notices the closed socket and ends the session
                try:
                    store.lease("bots manager").release()
                    break
                except ServiceError:
                    assert time.monotonic() < deadline, "the lease outlived its holder"
                    time.sleep(0.1)
    finally:
        holder.kill()
        holder.wait(10)
        holder.stdout.close()
