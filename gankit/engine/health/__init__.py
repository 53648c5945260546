"""The health monitor's parts: settings, per-step records, the checks, the unused-parameter probe, events."""

from gankit.engine.health.adversarial import DiscriminatorCollapseCheck, DiscriminatorOverpoweringCheck
from gankit.engine.health.audio import DcOffsetCheck, audio_stats
from gankit.engine.health.base import Check, Finding, Window
from gankit.engine.health.events import Event, EventSink, RateLimiter
from gankit.engine.health.layers import DeadLayersCheck, LayerGradNorms, layer_name
from gankit.engine.health.losses import LossSpikeCheck, NonfiniteGate
from gankit.engine.health.probe import UnusedParameters, find_unused_parameters
from gankit.engine.health.record import AudioStats, StepRecord
from gankit.engine.health.settings import HealthSettings

__all__ = [
    "AudioStats",
    "Check",
    "DcOffsetCheck",
    "DeadLayersCheck",
    "DiscriminatorCollapseCheck",
    "DiscriminatorOverpoweringCheck",
    "Event",
    "EventSink",
    "Finding",
    "HealthSettings",
    "LayerGradNorms",
    "LossSpikeCheck",
    "NonfiniteGate",
    "RateLimiter",
    "StepRecord",
    "UnusedParameters",
    "Window",
    "audio_stats",
    "find_unused_parameters",
    "layer_name",
]
