"""The shop example with pika (examples/shop/shop.py), a short run as a test: nothing lost,
nothing handled twice, failed payments parked after three retries counted from x-death,
unpaid orders cancelled by Warren's delayed exchange."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_the_shop_loses_no_order_and_handles_none_twice():
    run = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", "shop", "shop.py"),
         "--url", os.environ["AMQP_URL"], "--orders", "300"],
        capture_output=True, text=True, timeout=120)
    print(run.stdout, run.stderr)
    assert run.returncode == 0
    assert "timeouts by x-delayed-message" in run.stdout
    assert "lost 0  handled twice 0" in run.stdout
    assert "parked 15 (after [3] retries)" in run.stdout
