"""Late trades: a candle corrected after a bot processed it becomes a correction event.

The collector republishes a candle with ``corrected=True`` when trades arrive
for it after it closed. A bot that had already processed that candle does not
trade it again (its fills stand: it traded on what it saw, as a live bot would
have); it records what it would have decided on the corrected candle
(:meth:`~tcp_lab.store.Store.record_correction`), so a researcher sees every
decision that late data would have changed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pandas as pd

from tcp_lab.bots import window as W
from tcp_lab.strategies.decision import frame_of, last_decision

if TYPE_CHECKING:
    from tcp_lab.bots.bot import Bot
    from tcp_lab.bus import CandleMessage

__all__ = ["record_correction"]

log = logging.getLogger("tcp_lab.bots")


def _window_with(bot: Bot, candle: CandleMessage) -> W.Window:
    """The bot's window of closed candles ending with the corrected ``candle``."""
    c = bot.config
    lookback = 4 * bot.window
    while True:
        start = candle.ts - lookback * bot.timeframe.delta
        frame = bot.store.load_candles(c.exchange, c.symbol, c.timeframe, start=start,
                                       end=candle.ts)
        before = frame[frame.index < candle.ts]
        if len(before) >= bot.window - 1 or lookback > 64 * bot.window:
            break
        lookback *= 4  # gaps in the data: look further back
    frame = pd.concat([before.tail(bot.window - 1), frame_of(W.of_message(candle))])
    return W.of_frame(frame)


def record_correction(bot: Bot, candle: CandleMessage) -> None:
    """Record what ``bot`` would have decided on ``candle``, a corrected candle it processed."""
    then = bot.store.load_signals(bot.id, start=candle.ts, end=candle.ts)
    action = str(then["action"].iat[0]) if len(then) else None
    close = float(then["price"].iat[0]) if len(then) else None
    try:
        decision = last_decision(bot.strategy, _window_with(bot, candle), label=repr(bot.strategy))
        corrected = decision.signal(candle.ts, candle.close).action
    except Exception as e:  # the strategy's code; the correction is still worth a record
        corrected, detail = "error", f"{type(e).__name__}: {e}"
    else:
        detail = ("same decision" if corrected == action else
                  f"would have decided {corrected} instead of {action}")
    log.warning("bot %s: candle %s was corrected after it was processed (%s); its fills stand",
                bot.id, candle.ts, detail)
    bot.store.record_correction(bot.id, candle.ts, action=action, corrected_action=corrected,
                                close=close, corrected_close=candle.close, detail=detail)
