
WO-GLOT-G"PCBA-100(2g
1.0.0@ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015adfile:///srv/firmware/a.bin :