#include <libxml/xmlversion.h>
/* Debian builds libxml2 with ICU; its ICU headers clash with Foundation's copy of ICU. boxstack never
   touches the ICU-specific members of xmlCharEncodingHandler, so hide them. */
#undef LIBXML_ICU_ENABLED
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>
#include <libxml/relaxng.h>

/* xmlFree is a global function pointer, which Swift 6 sees as shared mutable state. */
static inline void boxstack_xml_free(void *pointer) { xmlFree(pointer); }
