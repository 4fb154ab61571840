"""What a failure of backflow means for the next run, said by its type (as dlt's terminal and
transient exception mixins do).

A terminal failure is in the delivery itself: taking the same batch again gives the same answer, so
it is recorded as rejected, with its evidence, and taken again only when the provider redelivers it.
A transient failure is in the exchange with the source (a 503, a timeout, a dropped connection):
nothing is recorded against any batch, and the next run asks again from the cursor it kept.
"""

from __future__ import annotations


class TerminalFailure(Exception):
    """Mixed into failures that only a new delivery from the provider can mend."""


class TransientFailure(Exception):
    """Mixed into failures that asking the source again later may mend (the cursor is kept)."""
