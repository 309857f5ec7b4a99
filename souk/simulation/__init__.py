"""Seeded, reproducible shopper simulation over the public HTTP API (``souk simulate``)."""

from souk.simulation.audit import StockAudit, audit_stock
from souk.simulation.model import (
    FRAUD_KINDS,
    SHOPPER_COUNTRIES,
    Card,
    LinePlan,
    SessionPlan,
    ShopperModel,
    ShopperProfile,
    SimulationConfig,
    ViewPlan,
    far_regions,
)
from souk.simulation.report import (
    FraudLabel,
    OrderRecord,
    SimulationReport,
    percentile,
    report_tables,
)
from souk.simulation.runner import (
    CARDS,
    ServerFailed,
    SessionAborted,
    Simulation,
    run_simulation,
)
from souk.simulation.server import free_port, serve_subprocess, server_environment

__all__ = [
    "CARDS",
    "FRAUD_KINDS",
    "SHOPPER_COUNTRIES",
    "Card",
    "FraudLabel",
    "LinePlan",
    "OrderRecord",
    "ServerFailed",
    "SessionAborted",
    "SessionPlan",
    "ShopperModel",
    "ShopperProfile",
    "Simulation",
    "SimulationConfig",
    "SimulationReport",
    "StockAudit",
    "ViewPlan",
    "audit_stock",
    "far_regions",
    "free_port",
    "percentile",
    "report_tables",
    "run_simulation",
    "serve_subprocess",
    "server_environment",
]
