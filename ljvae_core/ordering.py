"""Decoder targets put in the decoder's own particle order: :class:`OrderMatcher`."""

from __future__ import annotations

import numpy as np

from .geometry import assignment_orders, classical_mds, kabsch, match_across, matching_orders


class OrderMatcher:
    """Decoder targets whose particle order follows the decoder's own.

    A distance matrix lists particles in an arbitrary order (distance from the origin), sorted
    coordinates in another (along x); either jumps whenever two particles swap ranks, and a
    decoder made to reproduce it must learn those jumps. Between stretches of training,
    :meth:`match` decodes every configuration, matches its particles to the decoded ones and
    rebuilds its target (``rep``'s values) in that order; the encoder's inputs keep the
    representation's order.

    Decoders that go through coordinates are matched on those: for sorted coordinates in the
    box's frame, which is the decoder's (:func:`ljvae_core.geometry.assignment_orders`); for
    distances in the decoder's own frame, by the
    motions that keep heights (:func:`ljvae_core.geometry.match_across`); with ``coordinates``
    the moved configurations become targets too (the VAE's coordinate term). Other decoders
    are matched on the MDS of their output (:func:`ljvae_core.geometry.matching_orders`)."""

    def __init__(self, rep, inputs: dict, coords: dict, coordinates: bool = False):
        """inputs: {part: a :meth:`ljvae_core.trained.TrainedModel.model_data` dict};
        coords: {part: its configurations}; coordinates: keep matched coordinate targets."""
        self.rep = rep
        self.inputs = inputs
        self.ordered = {part: rep.sort(c) for part, c in coords.items()}
        self.targets = {part: x.get("target", x["x"]) for part, x in self.inputs.items()}
        self.coordinates = {} if coordinates else None

    def data(self, part: str) -> dict:
        data = {**self.inputs[part], "target": self.targets[part]}
        if self.coordinates is not None and part in self.coordinates:
            data["coordinates"] = self.coordinates[part]
        return data

    def match(self, model, batch_size: int = 512) -> float:
        """Re-order every target; returns the fraction of particles whose place changed."""
        moved = []
        for part, ordered in self.ordered.items():
            orders, aligned = self._orders(model, part, ordered, batch_size)
            self.targets[part] = self.rep.values(
                np.take_along_axis(ordered, orders[..., None], axis=1)).astype("float32")
            if self.coordinates is not None:
                self.coordinates[part] = aligned.astype("float32")
            moved.append(np.mean(orders != np.arange(orders.shape[1])))
        return float(np.mean(moved))

    def _orders(self, model, part, ordered, batch_size):
        x, c = self.inputs[part]["x"], self.inputs[part].get("condition")
        if model.has_coordinates:
            decoded = model.decoded_coordinates(x, c, batch_size)
            if self.rep.kind == "coords":  # the box's frame is the decoder's
                return assignment_orders(ordered, decoded), None
            if getattr(self.rep, "with_heights", False):
                return match_across(ordered, decoded, principal_starts=False)
            # Without heights the decoder's frame is arbitrary in every direction.
            orders = matching_orders(ordered, decoded)
            return orders, kabsch(np.take_along_axis(ordered, orders[..., None], 1), decoded)
        out = np.asarray(model.predict(x if c is None else (x, c), verbose=0,
                                       batch_size=batch_size))
        # The decoded shape up to a rigid motion is all that matching needs.
        decoded = classical_mds(self.rep.distances(out), self.rep.d)
        return matching_orders(ordered, decoded), None
