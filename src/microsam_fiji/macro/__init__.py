"""macro"""
