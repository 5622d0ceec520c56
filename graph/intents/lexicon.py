"""Word lists for reading a request's clauses without a model (English, German; folded forms).

Compound detection (:mod:`graph.intents.compound`) asks of each clause whether it asks for
something, and read-only detection (:mod:`graph.intents.readonly`) whether it only looks. The
lists are of verbs that requests use, words that are also nouns, the words that may follow a
verb (objects: articles, pronouns, numbers), fillers before a request ("please", "can you",
"kannst du"), and closed-class words that are never a verb. A verb missing from the lists is
still found by its shape (:mod:`graph.intents.compound`): an unknown word followed by an
object in English, a lower-case word followed by one in German, a German infinitive at a
clause's end. All words are folded (:func:`graph.intents.text.fold`: ä→ae, ß→ss).
"""

from __future__ import annotations

from graph.intents.text import wordset


def fillers(text: str) -> tuple[list[str], ...]:
    """Filler phrases ("|"-separated) as word lists, longest first."""
    phrases = [p.split() for p in " ".join(text.split()).split("|")]
    return tuple(sorted((p for p in phrases if p), key=lambda p: -len(p)))


# -- English ------------------------------------------------------------------------------

EN_FILLERS = fillers(
    """please|pls|plz|kindly|also|then|and|now|just|quickly|finally|first|firstly|second|
        secondly|third|thirdly|next|lastly|afterwards|additionally|furthermore|moreover|
        meanwhile|ok|okay|oh|so|but|hey|hi|hello|thanks|right|great|after that|as well|
        can you|could you|would you|will you|can u|could u|you can|you could|you should|
        can you please|could you please|would you please|would you kindly|
        i need you to|i want you to|i'd like you to|i would like you to|go ahead and|
        i need to|i want to|i'd like to|i would like to|i have to|we need to|we have to|
        i also need to|i also want to|i'd also like to|i would also like to|
        i wish to|i plan to|i'm planning to|i am planning to|i'm looking to|i am looking to|
        i'd love to|i would love to|i must|i should|we should|we must|
        let's|lets|let us|i'll|i will|we'll|help me|help me to|please help me|
        please help me to|can you help me|can you help me to|could you help me|
        could you help me to|make sure to|make sure you|don't forget to|remember to|try to|
        also please|then please|and please|maybe|for me|you need to|you have to|
        i'd appreciate it if you could|i would appreciate it if you could|
        i'd like for you to|i would like for you to|i'd like to also|i want to also"""
)
#: Verbs that open a request ("book a table", "transfer $100 to Tom").
EN_VERBS = wordset(
    """
    accept access activate add adjust alert analyse analyze annotate answer apply archive
    arrange ask assess assign attach attend authorise authorize back backup ban bid block
    book borrow brainstorm bring browse buy calculate call cancel caption capture
    categorise categorize change charge chat check choose classify clean clear clip close
    collect colorise colorize colourise combine compare compile complete compose compress
    compute confirm connect consult contact convert cook copy correct count crop create cut
    debug decline decode decrease decrypt delete deliver deposit describe design detect
    determine dial dictate disable disconnect discuss dismiss display distribute divide
    donate download draft draw drive drop dub duplicate edit email e-mail embed empty enable
    encode encrypt enhance enlarge enrol enroll enter erase estimate evaluate examine
    exchange execute expand explain export extract fax feed fetch figure file fill filter
    find finish fix flag flip follow format forward freeze gather generate get give google
    grab hail hang help hide highlight hire identify import improve increase inform initiate
    insert install invest invite issue jot keep label launch lend let lift limit list listen
    load locate lock log look lower mail make manage map mark measure merge message mix
    modify monitor move mow mute name navigate note notify open optimise optimize order
    organise organize outline pack paint paraphrase park paste pause pay perform pick pin
    ping place plan play plot post postpone predict prepare present preview print process
    produce proofread provide publish pull purchase push put quit rank rate read rebook
    recognise recognize recommend record redeem reduce refill refund register reject
    release reload remind remove rename renew rent reorder repair repeat rephrase replace
    reply report request rerun reschedule research reserve reset resize resolve respond
    restart restore resume retrieve return review revise rewrite ring rotate run save scan
    schedule search segment select sell send separate set settle share shorten show shred
    shut sign simplify skip slow snooze solve sort speak speed split start stitch stop store
    stream submit subscribe suggest summarise summarize swap switch sync synchronise
    synchronize synthesise synthesize take talk tell test text throw tidy top track trade
    transcribe transfer transform translate trim turn tweet type uninstall unlock unmute
    unpack unsubscribe unzip update upgrade upload use vacuum validate verify visit vote wake
    walk warn wash watch water withdraw write zip zoom remember grade hear see buy renew
    refuel charge enlist apply auto-drive autodrive summon dispatch ship sing tick cross
    join leave
    """
)
#: Verbs that are also nouns: a verb at a clause's start only when an object follows.
EN_NOUN_VERBS = wordset(
    """
    book call email e-mail mail text list file message order note plan play search check set
    show post print record start stop update backup block track drop pick watch transfer
    return report review copy export import answer contact design display estimate map mark
    name pass place process rate request run scan sign sort store stream test trade type
    visit vote walk wash water zip zoom ring rent fax clip crop chat charge back lock log help
    cut change trim draft label filter feed cook top turn point fix tweet email backup
    """
)
#: Words after a verb-noun that make it a noun ("the book club", "a list of files").
EN_NOUN_FOLLOWERS = wordset(
    """
    with of from notes address addresses thread threads invite invites club title account is
    was are list lists history status details number numbers date dates time times schedule
    settings info information requests results result confirmation receipt fee fees limit
    balance records log logs queue app button page link bill card id ids size format type
    box folder settings reminder alarm
    """
)
#: Nouns of things to check that "for" keeps nouns: "check my calendar and email for …".
EN_FOR_NOUNS = wordset("email e-mail mail message messages text texts")
#: Words that open a verb's object: "shred them", "transfer $100", "watch a movie".
EN_OBJECT_OPENERS = wordset(
    """
    a an the my your our his her its their this that these those it them him me us some
    all any every each another both several few one two three four five six seven eight
    nine ten
    """
)
#: Particles of phrasal verbs ("print out my file", "pick up the kids").
EN_PARTICLES = wordset("out up off down back away")
#: Closed-class and other words that never open an imperative.
EN_NOT_VERBS = wordset(
    """
    a an the my your our his her its their this that these those it them him me us i you he
    she we they there here what which who whom whose when where why how whether if because
    since though although unless until while after before as so than then also too very
    really just only even still already not no yes ok okay and or but nor for to of in on at
    by with from about into onto over under between through during without within per via
    is are was were be been being am has had do does did can could will would shall
    should may might must today tomorrow tonight yesterday now later soon once again always
    never sometimes usually all any some every each both either neither other another such
    same more most less least many much few several own thanks thank hi hello hey please
    monday tuesday wednesday thursday friday saturday sunday january february march april
    may june july august september october november december mr mrs ms dr
    """
)
#: Verbs that only look: a clause that opens with one changes nothing.
EN_LOOK_VERBS = wordset(
    """
    find locate search look check show list read see view display tell google browse
    lookup review examine count
    """
)

# -- German -------------------------------------------------------------------------------

DE_FILLERS = fillers(
    """bitte|auch|noch|dann|danach|mal|doch|und|zuerst|erst|anschliessend|ausserdem|
        sowie|zudem|jetzt|nun|schnell|gleich|ok|okay|also|hey|hallo|hi|danke|gut|super|
        zum schluss|schliesslich|zuletzt|als naechstes|zusaetzlich|
        kannst du|koenntest du|wuerdest du|kannst du bitte|koenntest du bitte|
        wuerdest du bitte|kannst du mir|koenntest du mir|bitte noch|bitte auch|
        ich moechte|ich will|ich muss|ich wuerde gern|ich wuerde gerne|ich brauche|
        ich haette gern|ich haette gerne|ich moechte gern|ich moechte gerne|
        wir muessen|wir wollen|wir moechten|du kannst|du koenntest|du sollst|
        und bitte|dann bitte|mir|uns|ausserdem noch|vergiss nicht|hilf mir|hilf mir bitte|
        ich moechte auch|ich will auch|ich muss auch"""
)
DE_IMPERATIVES = wordset(
    """
    buch buche schick schicke send sende schreib schreibe erinner erinnere oeffne mach mache
    leg lege erstell erstelle loesch loesche verschieb verschiebe such suche find finde trag
    trage setz setze plan plane sag sage lad lade ruf rufe bestell bestelle kauf kaufe
    reservier reserviere pruef pruefe check checke schau schaue zeig zeige lies fass fasse
    antworte antwort beantworte leit leite kopier kopiere benenn benenne sortier sortiere
    raeum raeume start starte schliess schliesse beende beend spiel spiele stell stelle dreh
    drehe notier notiere recherchier recherchiere googel google ueberweis ueberweise bezahl
    bezahle zahl zahle druck drucke speicher speichere teil teile informier informiere frag
    frage uebersetz uebersetze berechne berechn entfern entferne fueg fuege nimm streich
    streiche hak hake vereinbar vereinbare organisier organisiere archivier archiviere
    verschick verschicke besorg besorge hol hole pack packe aktualisier aktualisiere melde
    meld erledige erledig gib leer leere blockier blockiere zieh ziehe benachrichtige
    schalte schalt mute exportier exportiere importier importiere markier markiere merk
    merke guck gucke hoer hoere bring bringe verkauf verkaufe miete miet leih leihe bestaetig
    bestaetige kontaktier kontaktiere installier installiere deinstallier deinstalliere
    aktivier aktiviere deaktivier deaktiviere scann scanne konvertier konvertiere wandel
    wandle extrahier extrahiere komprimier komprimiere entpack entpacke poste post
    veroeffentliche abonnier abonniere kuendig kuendige storniere stornier fahr fahre koch
    koche back backe wasch wasche putz putze giess giesse fuetter fuettere bewerte bewert
    vergleich vergleiche analysier analysiere kontrollier kontrolliere verschluessel
    unterschreib unterschreibe zeichne zeichn mal male generier generiere erzeug erzeuge
    entwirf formulier formuliere kuerz kuerze erklaer erklaere beschreib beschreibe lern
    lerne spend spende tank tanke weck wecke minimier minimiere sicher sichere pausier
    pausiere stopp stoppe ueberspring ueberspringe wiederhol wiederhole transkribier
    transkribiere verbessere verbesser korrigier korrigiere anruf nutze nutz verwende
    verwend oeffnen lies mach schreib melde abonniere buchen hinterleg hinterlege
    """
)
DE_NOUN_VERBS = wordset("buch plan druck start check ruf spiel teil frage post back mal")
#: Words after a German verb (its object or an adverb): "schick ihm", "buch den Tisch".
DE_VERB_FOLLOWERS = wordset(
    """den die das dem der einen eine ein einem einer mir uns ihm ihr ihnen es sie bitte mal
    noch doch auch meinen meine mein meinem meiner deinen deine dein alle allen alles fuer
    an auf in ab zu um dich ihn euch diese diesen dieses diesem dieser jetzt sofort gleich
    schnell"""
)
DE_INFINITIVES = wordset(
    """
    buchen schicken senden schreiben erinnern eintragen anlegen erstellen loeschen
    verschieben suchen finden oeffnen schliessen absagen einladen planen vereinbaren
    bestellen kaufen reservieren pruefen checken zeigen lesen vorlesen zusammenfassen
    beantworten weiterleiten kopieren umbenennen sortieren aufraeumen starten beenden
    spielen stellen notieren googeln recherchieren nachschauen nachsehen ueberweisen
    bezahlen drucken speichern teilen herunterladen hochladen informieren fragen
    uebersetzen berechnen entfernen hinzufuegen setzen machen legen abhaken streichen
    nehmen anrufen verschicken abschicken organisieren archivieren besorgen holen
    aktualisieren erledigen mailen abonnieren kuendigen anschauen ansehen schauen gucken
    hoeren anhoeren verkaufen mieten leihen ausleihen bestaetigen kontaktieren
    installieren aktivieren deaktivieren scannen konvertieren umwandeln extrahieren
    komprimieren entpacken posten veroeffentlichen stornieren fahren kochen backen waschen
    putzen giessen fuettern bewerten vergleichen analysieren kontrollieren unterschreiben
    zeichnen malen generieren erzeugen entwerfen formulieren kuerzen erklaeren beschreiben
    lernen spenden tanken wecken sichern pausieren stoppen ueberspringen wiederholen
    transkribieren verbessern korrigieren schreddern vernichten abholen bringen einkaufen
    buchen anmelden abmelden erneuern zahlen leeren blockieren exportieren importieren
    markieren merken senden teilen liefern zustellen
    """
)
#: Lower-case German words that end like an infinitive but are none ("morgen", "allen").
DE_NOT_INFINITIVES = wordset(
    """
    morgen uebermorgen gestern vorgestern oben unten hinten vorne draussen drinnen allen
    meinen deinen seinen ihren unseren euren einen keinen diesen jenen welchen den denen
    wen eben neben zwischen wegen einigen mehreren beiden anderen uebrigen letzten
    naechsten folgenden offenen neuen alten wichtigen grossen kleinen ersten zweiten
    dritten vielen wenigen ganzen halben vollen leeren sieben elf zwoelf zehn
    abends morgens mittags nachmittags trotzdem seitdem statt stattdessen namen
    """
)
DE_NOT_VERBS = wordset(
    """
    der die das den dem des ein eine einen einem einer und oder aber zu zum zur von vom mit
    fuer auf aus bei nach ueber unter vor hinter neben zwischen durch ohne gegen um an in im
    am ins ich du er sie es wir ihr mich dich mir dir uns euch ihm ihn ihnen mein meine dein
    deine sein seine unser unsere was wer wie wo wann warum welche welcher welches ob dass
    weil wenn als denn nicht kein keine ja nein heute morgen gestern jetzt dann danach noch
    schon auch bitte danke hallo hi hey ist sind war waren bin bist hat habe hast haben wird
    werden kann kannst koennen muss musst muessen soll sollst sollen will willst wollen
    moechte moechtest darf alle alles jede jeder jedes diese dieser dieses montag dienstag
    mittwoch donnerstag freitag samstag sonntag januar februar maerz april mai juni juli
    august september oktober november dezember herr frau dr
    """
)
#: German verbs that only look.
DE_LOOK_VERBS = wordset(
    """
    such suche find finde zeig zeige lies les pruef pruefe check checke schau schaue guck
    gucke sieh nachschauen nachsehen suchen finden zeigen lesen pruefen checken schauen
    anschauen ansehen recherchier recherchiere recherchieren googel google googeln
    vorlesen gib
    """
)
