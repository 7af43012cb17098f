"""zhengai.connectors — pull data from campus systems and hand typed records downstream."""
