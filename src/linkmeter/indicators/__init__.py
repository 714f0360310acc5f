"""Indicators: numbers linkmeter derives from the providers' signals."""
