"""A fake CoinGecko API v3 server and its datasets.

Part of the product: our tests, the offline demo and users' own tests run against it.

```python
from kallos.fake import FakeCoinGecko, SimulatedMarket, load_csv_dataset, Faults
with FakeCoinGecko(dataset=SimulatedMarket(seed=7), plan="pro") as srv:
    srv.url   # -> KALLOS_COINGECKO_BASE_URL
```
See docs/fake-server.md.
"""

from kallos.fake.csv_dataset import load_csv_dataset
from kallos.fake.dataset import CoinInfo, Dataset
from kallos.fake.faults import FAULT_NAMES, Faults
from kallos.fake.server import FakeCoinGecko, RecordedRequest
from kallos.fake.simulated import SimulatedMarket
from kallos.fake.transport import FAKE_URL, FakeClock, FakeTransport, client_for

__all__ = [
    "CoinInfo",
    "Dataset",
    "FAKE_URL",
    "FAULT_NAMES",
    "FakeClock",
    "FakeCoinGecko",
    "FakeTransport",
    "Faults",
    "RecordedRequest",
    "SimulatedMarket",
    "client_for",
    "load_csv_dataset",
]
