"""The linker: sections and relocations -> a relocatable :class:`Image`."""

from .image import ELF_MACHINES, PAGE, Image, Reloc, Section, link, link_elf

__all__ = ["ELF_MACHINES", "PAGE", "Image", "Reloc", "Section", "link", "link_elf"]
