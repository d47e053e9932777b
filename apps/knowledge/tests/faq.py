"""A Spanish FAQ of a bicycle shop (20 entries), each with a customer's paraphrased question."""

from __future__ import annotations

FAQ: list[tuple[str, str, str]] = [
    # (heading, answer, customer's question)
    (
        "¿Cuánto cuesta el envío?",
        "El envío a la península cuesta 5 euros y es gratis en pedidos de más de 100 euros.",
        "¿cuánto me cobran por mandar el pedido a casa?",
    ),
    (
        "¿Cuánto tarda en llegar mi pedido?",
        "Los pedidos llegan en 48 horas laborables a la península y en una semana a Baleares.",
        "¿en cuántos días recibo la compra?",
    ),
    (
        "¿Hacéis envíos a Canarias?",
        "Sí, enviamos a Canarias con un suplemento de 15 euros por los trámites de aduana.",
        "¿llegan vuestros pedidos a las islas Canarias?",
    ),
    (
        "¿Puedo devolver un producto?",
        "Tienes 30 días para devolver cualquier producto sin usar con su embalaje original.",
        "me arrepiento de la compra, ¿la puedo devolver?",
    ),
    (
        "¿Qué garantía tienen las bicicletas?",
        "Las bicicletas tienen dos años de garantía en piezas y cinco años en el cuadro.",
        "si se rompe el cuadro, ¿está cubierto por garantía?",
    ),
    (
        "¿Qué formas de pago aceptáis?",
        "Aceptamos tarjeta de crédito, PayPal, Bizum y transferencia bancaria.",
        "¿puedo pagar con Bizum?",
    ),
    (
        "¿Se puede pagar a plazos?",
        "Puedes financiar tu compra en 3, 6 o 12 meses sin intereses a partir de 300 euros.",
        "¿ofrecéis financiación sin intereses?",
    ),
    (
        "¿Dónde está la tienda física?",
        "La tienda está en la calle Mayor 12 de Valencia, junto al mercado central.",
        "¿en qué dirección está vuestro local?",
    ),
    (
        "¿Cuál es el horario de la tienda?",
        "Abrimos de lunes a sábado de 10:00 a 20:00; los domingos cerramos.",
        "¿a qué hora abrís el sábado?",
    ),
    (
        "¿Cómo elijo la talla de bicicleta?",
        "Mide tu altura: de 150 a 165 cm talla S, de 165 a 180 cm talla M y más de 180 cm talla L.",
        "mido 172 centímetros, ¿qué tamaño de cuadro necesito?",
    ),
    (
        "¿Tenéis taller de reparaciones?",
        "Nuestro taller repara pinchazos, frenos y cambios; una revisión completa cuesta 45 euros.",
        "se me ha pinchado la rueda, ¿me la arregláis?",
    ),
    (
        "¿Vendéis bicicletas eléctricas?",
        "Sí, tenemos bicicletas eléctricas urbanas y de montaña con autonomía de hasta 120 km.",
        "busco una bici con motor eléctrico para ir al trabajo",
    ),
    (
        "¿Cuánto dura la batería de una bici eléctrica?",
        "La batería dura unos 800 ciclos de carga, entre tres y cinco años de uso normal.",
        "¿cada cuánto hay que cambiar la batería?",
    ),
    (
        "¿Puedo probar una bicicleta antes de comprarla?",
        "Sí, puedes hacer una prueba gratuita de 30 minutos en la tienda con tu DNI.",
        "¿se puede dar una vuelta de prueba con la bici?",
    ),
    (
        "¿Alquiláis bicicletas?",
        "Alquilamos bicicletas por 15 euros al día o 60 euros a la semana, casco incluido.",
        "quiero rentar una bici para el fin de semana",
    ),
    (
        "¿Hacéis descuentos a estudiantes?",
        "Los estudiantes con carné universitario tienen un 10% de descuento en accesorios.",
        "soy universitario, ¿tengo alguna rebaja?",
    ),
    (
        "¿Cómo hago el seguimiento de mi pedido?",
        "Recibirás un correo con el número de seguimiento de la agencia de transporte.",
        "¿dónde veo por dónde va mi paquete?",
    ),
    (
        "¿Puedo cambiar la dirección de entrega?",
        "Puedes cambiar la dirección de entrega escribiéndonos antes de que el pedido salga "
        "del almacén.",
        "me he equivocado de domicilio al comprar, ¿se puede corregir?",
    ),
    (
        "¿Vendéis tarjetas regalo?",
        "Vendemos tarjetas regalo de 25, 50 y 100 euros válidas durante un año.",
        "quiero regalar un vale a un amigo ciclista",
    ),
    (
        "¿Recogéis la bicicleta vieja?",
        "Si compras una bicicleta nueva, recogemos la vieja gratis y la donamos a una ONG.",
        "¿qué hago con mi bici antigua si compro una nueva?",
    ),
]


def faq_markdown() -> bytes:
    parts = ["# Preguntas frecuentes de Bicis Mayor\n"]
    for heading, answer, _question in FAQ:
        parts.append(f"## {heading}\n\n{answer}\n")
    return "\n".join(parts).encode()
