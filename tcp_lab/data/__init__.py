"""Market data: trades -> candles, exchange providers, the emulator, the collector.

Submodules load on demand (nothing heavy is imported here):

- :mod:`tcp_lab.data.aggregate`: trades -> OHLCV candles and candle resampling (batch,
  chunked), vectorised with numba kernels in :mod:`tcp_lab.data._kernels`.
- :mod:`tcp_lab.data.streaming`: :class:`~tcp_lab.data.streaming.StreamingAggregator`,
  the live path (closes candles as trades and clock ticks arrive).
"""
