import httpx


def test_live(base_url: str) -> None:
    assert httpx.get(f"{base_url}/v2/health/live").json() == {"live": True}
