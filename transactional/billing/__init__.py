"""Billing: tax rules applied at checkout, invoices and credit notes rendered as PDF."""
