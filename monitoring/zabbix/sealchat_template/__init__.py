"""The sealchat Zabbix template, built from Python (see ``../build_template.py``)."""
