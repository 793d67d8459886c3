"""Use cases that change member state through the write side: scheduler runs, points redemption."""
